"""Notebook 5: TensorFlow's "same" padding and the parameter count of a scaled Xception."""


def same_padding(n, k, s):
    """(before, after): TensorFlow's "same" padding of an n-pixel axis for window k, stride s."""
    # BEGIN SOLUTION
    out = -(-n // s)                             # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2
    # END SOLUTION


def xception_params(width_multiplier, middle_blocks, num_classes):
    """Trainable parameters of Xception with every channel count c scaled to round(c * m).

    3-channel input, `middle_blocks` middle-flow blocks, a dense classifier with a bias; batch
    normalization's gamma and beta count, its moving statistics do not.
    """
    # BEGIN SOLUTION
    def ch(c):
        return max(1, round(c * width_multiplier))

    def sep(cin, cout):                          # depthwise 3x3 + pointwise + BN (gamma, beta)
        return 9 * cin + cin * cout + 2 * cout

    def conv(k, cin, cout):                      # no bias, then BN
        return k * k * cin * cout + 2 * cout

    total = conv(3, 3, ch(32)) + conv(3, ch(32), ch(64))
    cin = ch(64)
    for c in (128, 256, 728):                    # blocks 2-4: two sepconvs and a 1x1 shortcut
        total += sep(cin, ch(c)) + sep(ch(c), ch(c)) + conv(1, cin, ch(c))
        cin = ch(c)
    total += middle_blocks * 3 * sep(cin, cin)
    total += sep(cin, ch(728)) + sep(ch(728), ch(1024)) + conv(1, cin, ch(1024))   # block 13
    total += sep(ch(1024), ch(1536)) + sep(ch(1536), ch(2048))                    # block 14
    return total + ch(2048) * num_classes + num_classes
    # END SOLUTION
