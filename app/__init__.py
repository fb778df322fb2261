"""Nibble Studio desktop app (PySide6).

Layering: ``app`` may import ``gpu`` (the headless engine), never the reverse. Widgets never touch torch or
the engine directly: engine calls happen on a worker ``QThread`` (``app.engine_worker``). Importing this
package must stay cheap (no torch) so the window shows fast.
"""
