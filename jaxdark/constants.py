"""Numbers the whole package agrees on (one home for each)."""

INPUT_MULTIPLE = 32  # the network's input sides must be multiples of this (five 2x downsamplings)
MIN_AMPLIFICATION = 1.0  # the amplifier's and the exposure ratio's range, as in the reference
MAX_AMPLIFICATION = 300.0
MAX_USER_AMPLIFICATION = 1e4  # a factor given by hand (--amplification) above this is refused
MAX_M = 1e3  # the amplifier's brightness m must lie in (0, MAX_M]
# How an input is brightened in training and evaluation: "gt" by the exposure ratio (ground
# truth), "estimated" by the amplifier (`jaxdark.imaging.amplifier`).
AMPLIFICATION_MODES = ("gt", "estimated")

# The SID camera, the Sony a7S II: raw levels in DN, and SID's exposure ratios
# (0.1 s, 0.04 s, 0.033 s short exposures against 10 s or 30 s long ones, capped at 300).
SID_BLACK_LEVEL = 512
SID_WHITE_LEVEL = 16383  # 14-bit saturation
SID_RATIOS = (100.0, 250.0, 300.0)
