"""How a message and its hint read on one line (``gpu.errors.with_hint``), for the command line, the log and the
app's labels alike."""

from __future__ import annotations

from app.engine_errors import EngineError, classify
from gpu.errors import OutputBusy, UserError


def test_a_phrase_hint_goes_in_parentheses():
    assert UserError("rank 2000 is not possible", "use 0 to 1024").text == "rank 2000 is not possible (use 0 to 1024)"


def test_a_sentence_hint_follows_the_message_as_a_sentence():
    """The wizard's hints are sentences: "(The wizard saves models in …)" read as an aside in parentheses."""
    error = EngineError("user", "out.safetensors is being written by another run",
                        "Wait for that run to finish, or stop it, then run again.")  # fmt: skip
    assert error.text == ("out.safetensors is being written by another run. Wait for that run to finish, or stop it, "
                          "then run again.")  # fmt: skip
    ended = EngineError("user", "The disk is full.", "Free some space, then run again.")
    assert ended.text == "The disk is full. Free some space, then run again."


def test_an_engine_error_reads_as_its_user_error():
    busy = OutputBusy("x.safetensors is being written by another run right now", "wait for it to finish")
    assert classify(busy).text == busy.text == ("x.safetensors is being written by another run right now (wait for "
                                                "it to finish)")  # fmt: skip


def test_no_hint_is_the_message_alone():
    assert UserError("no model").text == EngineError("user", "no model").text == "no model"


def test_a_phrase_hint_goes_inside_the_messages_full_stop():
    """"rank 0 is not possible. (use 1 to 1024)" read as a stray aside after the sentence had ended."""
    assert UserError("rank 0 is not possible.", "use 1 to 1024").text == "rank 0 is not possible (use 1 to 1024)."
    assert UserError("wait...", "try again").text == "wait... (try again)"  # an ellipsis is no full stop


def test_a_phrase_hint_after_parentheses_follows_a_semicolon():
    """"x (tried: a, b) (add the folder)" read as two asides; the second is what to do."""
    error = UserError("no base pipeline (tried: a, b)", "add the pipeline folder")
    assert error.text == "no base pipeline (tried: a, b); add the pipeline folder"
    assert EngineError("user", "no base pipeline (tried: a, b)", "add the pipeline folder").text == error.text
