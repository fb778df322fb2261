"""Runtime: which execution path serves a quantized layer on this machine."""
