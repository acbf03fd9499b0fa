"""The fold both door formats render from (api/formats/transcript.py).

The OpenAI and Anthropic writers trust the transcript to say which block each
piece of output belongs to and when a block ends; a mistake here would be a
wrong `index` on the wire for every client of both doors.
"""

from __future__ import annotations

from api.formats.transcript import Appended, Closed, Ended, Opened, Started, Transcript, Voided
from services.events import CancelledEvent, DoneEvent, ResetEvent
from tests.unit.transcripts import start, text, tool


def test_consecutive_text_is_one_block() -> None:
    transcript = Transcript()
    assert transcript.apply(start()) == [Started(1)]
    assert transcript.apply(text("Hel")) == [Opened(0), Appended(0, "Hel")]
    assert transcript.apply(text("lo")) == [Appended(0, "lo")]
    assert len(transcript.blocks) == 1
    assert transcript.text == "Hello"


def test_an_empty_text_delta_changes_nothing() -> None:
    transcript = Transcript()
    transcript.apply(start())
    assert transcript.apply(text("")) == []
    assert transcript.blocks == []


def test_a_tool_call_closes_the_text_and_opens_its_own_block() -> None:
    transcript = Transcript()
    transcript.apply(start())
    transcript.apply(text("Let me look."))
    steps = transcript.apply(tool(0, '{"q":', call_id="call_1", name="search"))
    assert steps == [Closed(0), Opened(1), Appended(1, '{"q":')]
    assert transcript.apply(tool(0, '"x"}')) == [Appended(1, '"x"}')]
    (call,) = transcript.tool_blocks
    assert (call.call_id, call.name, call.content) == ("call_1", "search", '{"q":"x"}')
    assert transcript.text == "Let me look."


def test_each_tool_call_is_a_block_and_text_after_one_is_a_new_block() -> None:
    transcript = Transcript()
    transcript.apply(start())
    transcript.apply(tool(0, "{}", call_id="a", name="f"))
    assert transcript.apply(tool(1, "{}", call_id="b", name="g")) == [
        Closed(0),
        Opened(1),
        Appended(1, "{}"),
    ]
    assert transcript.apply(text("done")) == [Closed(1), Opened(2), Appended(2, "done")]
    assert [block.kind for block in transcript.blocks] == ["tool_use", "tool_use", "text"]


def test_a_call_id_or_name_arriving_in_a_later_fragment_is_kept() -> None:
    transcript = Transcript()
    transcript.apply(start())
    transcript.apply(tool(0, "", name="f"))
    transcript.apply(tool(0, "{}", call_id="late"))
    (call,) = transcript.tool_blocks
    assert (call.call_id, call.name) == ("late", "f")


def test_a_header_only_fragment_opens_the_block_without_content() -> None:
    transcript = Transcript()
    transcript.apply(start())
    assert transcript.apply(tool(0, "", call_id="a", name="f")) == [Opened(0)]


def test_a_reset_voids_the_attempt_and_says_whether_it_had_output() -> None:
    transcript = Transcript()
    transcript.apply(start(1))
    transcript.apply(text("void"))
    assert transcript.apply(ResetEvent(attempt=2, reason="overloaded")) == [
        Voided(True, 2, "overloaded")
    ]
    assert (transcript.blocks, transcript.open_block, transcript.attempt) == ([], None, 2)
    transcript.apply(start(2))
    assert transcript.apply(ResetEvent(attempt=3, reason="again")) == [Voided(False, 3, "again")]
    assert transcript.apply(text("kept")) == [Opened(0), Appended(0, "kept")]
    assert transcript.text == "kept"


def test_the_terminal_event_closes_the_open_block_and_is_recorded() -> None:
    transcript = Transcript()
    transcript.apply(start())
    transcript.apply(text("x"))
    done = DoneEvent(finish_reason="stop")
    assert transcript.apply(done) == [Closed(0), Ended(done)]
    assert transcript.ending == done
    assert transcript.open_block is None


def test_a_cancel_with_nothing_open_only_ends() -> None:
    transcript = Transcript()
    transcript.apply(start())
    cancelled = CancelledEvent()
    assert transcript.apply(cancelled) == [Ended(cancelled)]
    assert transcript.ending == cancelled
