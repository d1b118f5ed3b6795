"""The two cell constructors every notebook source uses."""


def md(text: str) -> tuple[str, str]:
    """A markdown cell."""
    return ("md", text)


def code(text: str) -> tuple[str, str]:
    """A code cell."""
    return ("code", text)
