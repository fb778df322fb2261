"""Thin widgets bound to the observable state objects in ``app``."""
