"""Default settings of a quantization run, and which methods use which settings, in one place for the engine, the
CLI and the wizard.

Torch-free on purpose: ``main.py`` builds its ``--help`` from these, and the wizard its fields, without importing
the engine."""

DEFAULT_RANK = 32  # the paper's rank of the 16-bit low-rank branch
# The largest rank the engine takes for any model (``QuantizeConfig.validate``), and so the command line's --rank and
# the wizard's rank field. A model's layers may take less (``layer_rank_limit``: 128 on the demo's 256-wide layers),
# or more (1536 on FLUX.1's 3072-wide ones), which only costs memory and time.
MAX_RANK = 1024
DEFAULT_CALIB_PROMPTS = 64  # the paper's calibration set size
DEFAULT_ALPHA_POINTS = 11  # smoothing strengths 0, 0.1, ..., 1
# The grid of runs from before the setting was recorded (their parts folders lack it): fixed, unlike the default.
LEGACY_ALPHA_POINTS = 11
MAX_ALPHA_POINTS = 101  # steps of 0.01; each point costs one more decomposition of every smoothed layer
# Budgets of a 16 GB laptop GPU with headroom for the desktop, and of a 32 GB laptop's RAM.
DEFAULT_GPU_BUDGET_GIB = 14.0
DEFAULT_RAM_BUDGET_GIB = 24.0
# The methods that smooth (search an alpha per layer): alpha points and shared smoothing matter only for them.
SMOOTHING_METHODS = ("svdquant", "smoothquant")
# The methods with a 16-bit low-rank branch: the rank matters only for them.
RANK_METHODS = ("svdquant", "svd", "lorc")
# What a low-rank method is without its branch (rank 0): the same model as this other method makes, so the run
# refuses rank 0 for it rather than write that model under a second name.
RANK_ZERO_SAME_AS = {"svdquant": "smoothquant", "svd": "naive", "lorc": "naive"}
# The methods whose weights have a format of their own (NF4): the precision (INT4, NVFP4, INT8) does not apply.
OWN_FORMAT_METHODS = ("nf4",)


def unused_fields(method: object) -> set[str]:
    """The ``QuantizeConfig`` fields the quantization ``method`` does not use, which the wizard greys out and the
    command line says it ignores: the rank but for the low-rank methods, the shared smoothing and the alpha grid but
    for the smoothing methods, the precision for NF4 (its own format)."""
    unused = set()
    if method not in RANK_METHODS:
        unused.add("rank")
    if method not in SMOOTHING_METHODS:
        unused |= {"shared_smoothing", "alpha_points"}
    if method in OWN_FORMAT_METHODS:
        unused.add("precision")
    return unused
