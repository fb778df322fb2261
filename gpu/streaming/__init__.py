"""Streaming, resumable quantization: one transformer block in memory at a time (see ``engine``, the run's driver,
which lists the modules of its stages). The run's parts folder is ``parts_folder``, whether a run resumes from it
``resume``, the unfinished runs ``unfinished``; the weights are read through ``source``, the disk space counted by
``disk_space`` and estimated by ``space_needed``."""
