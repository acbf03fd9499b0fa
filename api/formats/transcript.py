"""The current attempt of a generation, folded from its events into content blocks.

The OpenAI and Anthropic formats both need the same view of a stream: which text
and tool calls the current attempt has produced, in order, and what each new
event changes. `Transcript.apply` folds one event and returns the `Step`s it
caused, which each format renders in its own wire shape; the same fold serves
the non-streaming answers, which render the final blocks once.

Blocks follow Anthropic's model, which is the stricter of the two: consecutive
text is one text block, and every tool call is its own block, opened by its first
fragment. A `reset` voids every block, since the attempt that made them is void.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from services.events import (
    CancelledEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    ResetEvent,
    StartEvent,
)


@dataclass
class Block:
    """One content block of the answer: text, or one tool call and its arguments so far."""

    kind: Literal["text", "tool_use"]
    call_index: int | None = None
    call_id: str | None = None
    name: str | None = None
    parts: list[str] = field(default_factory=list)
    """Pieces of the content, joined only when asked (appending to a str is quadratic)."""

    @property
    def content(self) -> str:
        """The text, or for a tool call the JSON arguments received so far."""
        return "".join(self.parts)


@dataclass(frozen=True, slots=True)
class Started:
    attempt: int


@dataclass(frozen=True, slots=True)
class Opened:
    block: int


@dataclass(frozen=True, slots=True)
class Closed:
    block: int


@dataclass(frozen=True, slots=True)
class Appended:
    """`content` was appended to block `block` (text, or a tool call's arguments)."""

    block: int
    content: str


@dataclass(frozen=True, slots=True)
class Voided:
    """A reset: the attempt's output so far is void; `had_output` says if there was any."""

    had_output: bool
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The terminal event, as stored."""

    event: DoneEvent | ErrorEvent | CancelledEvent


Step = Started | Opened | Closed | Appended | Voided | Ended


@dataclass
class Transcript:
    """Blocks of the current attempt, and how the generation ended (once it has)."""

    blocks: list[Block] = field(default_factory=list)
    open_block: int | None = None
    attempt: int = 0
    ending: DoneEvent | ErrorEvent | CancelledEvent | None = None

    @property
    def text(self) -> str:
        return "".join(block.content for block in self.blocks if block.kind == "text")

    @property
    def tool_blocks(self) -> list[Block]:
        return [block for block in self.blocks if block.kind == "tool_use"]

    def apply(self, event: Event) -> list[Step]:
        if isinstance(event, StartEvent):
            self.attempt = event.attempt
            return [Started(event.attempt)]
        if isinstance(event, DeltaEvent):
            return self._delta(event)
        if isinstance(event, ResetEvent):
            had_output = bool(self.blocks)
            self.blocks, self.open_block = [], None
            self.attempt = event.attempt
            return [Voided(had_output, event.attempt, event.reason)]
        steps = self._close()
        self.ending = event
        return [*steps, Ended(event)]

    def _delta(self, event: DeltaEvent) -> list[Step]:
        steps: list[Step] = []
        if event.tool_call is not None:
            fragment = event.tool_call
            target = next(
                (
                    index
                    for index, block in enumerate(self.blocks)
                    if block.kind == "tool_use" and block.call_index == fragment.index
                ),
                None,
            )
            if target is None:
                steps.extend(self._close())
                self.blocks.append(
                    Block(
                        "tool_use",
                        call_index=fragment.index,
                        call_id=fragment.id,
                        name=fragment.name,
                    )
                )
                target = self.open_block = len(self.blocks) - 1
                steps.append(Opened(target))
            block = self.blocks[target]
            block.call_id = block.call_id or fragment.id
            block.name = block.name or fragment.name
            if fragment.arguments:
                block.parts.append(fragment.arguments)
                steps.append(Appended(target, fragment.arguments))
            return steps
        if not event.text:
            return steps
        if self.open_block is None or self.blocks[self.open_block].kind != "text":
            steps.extend(self._close())
            self.blocks.append(Block("text"))
            self.open_block = len(self.blocks) - 1
            steps.append(Opened(self.open_block))
        self.blocks[self.open_block].parts.append(event.text)
        steps.append(Appended(self.open_block, event.text))
        return steps

    def _close(self) -> list[Step]:
        if self.open_block is None:
            return []
        closed, self.open_block = self.open_block, None
        return [Closed(closed)]
