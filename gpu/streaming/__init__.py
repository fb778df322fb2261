"""Streaming, resumable quantization: one transformer block in memory at a time (see ``engine``). The run's
parts folder is ``parts_folder``, whether a run resumes from it ``resume``, the unfinished runs ``unfinished``;
the weights are read through ``source``, the disk space counted by ``disk_space``."""
