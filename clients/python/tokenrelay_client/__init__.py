"""tokenrelay-client: the tokenrelay API from Python, with streams that resume by themselves.

from tokenrelay_client import TokenRelay

tr = TokenRelay(base_url="http://127.0.0.1:8000", api_key="…")
gen = tr.generations.create(model="demo/story", messages=[{"role": "user", "content": "hi"}])
with tr.generations.stream(gen.id) as s:
    for event in s:
        if event.type == "delta" and event.text:
            print(event.text, end="", flush=True)
print(s.status)
"""

from ._client import AsyncTokenRelay, TokenRelay
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    TokenRelayError,
    UnprocessableEntityError,
)
from ._sse import SseMessage, SseParser
from ._stream import AsyncGenerationStream, GenerationStream, ReconnectPolicy
from ._types import (
    CancelledEvent,
    CreatedGeneration,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    ErrorInfo,
    Generation,
    GenerationList,
    GenerationStatus,
    ResetEvent,
    ResyncEvent,
    StartEvent,
    StreamEvent,
    ToolCall,
    ToolCallFragment,
    UnknownEvent,
    Usage,
    ViewerToken,
)

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncGenerationStream",
    "AsyncTokenRelay",
    "AuthenticationError",
    "BadRequestError",
    "CancelledEvent",
    "ConflictError",
    "CreatedGeneration",
    "DeltaEvent",
    "DoneEvent",
    "ErrorEvent",
    "ErrorInfo",
    "Generation",
    "GenerationList",
    "GenerationStatus",
    "GenerationStream",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReconnectPolicy",
    "RequestTooLargeError",
    "ResetEvent",
    "ResyncEvent",
    "ServiceUnavailableError",
    "SseMessage",
    "SseParser",
    "StartEvent",
    "StreamEvent",
    "TokenRelay",
    "TokenRelayError",
    "ToolCall",
    "ToolCallFragment",
    "UnknownEvent",
    "UnprocessableEntityError",
    "Usage",
    "ViewerToken",
]
