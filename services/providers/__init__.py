"""Provider registry: which `PROVIDER/` prefixes this deployment can serve.

Each provider is declared once, in `PROVIDERS`: how a worker builds it, which
settings configure it, and which models `GET /v1/models` suggests. The API's
checks, its error hints, the model list and the worker's clients are all derived
from that one declaration.

The SDK-backed providers are imported only when a worker builds them: the
`openai` and `anthropic` packages take seconds of CPU to import, which every API
process (it never calls a provider) and every demo-only worker would otherwise
pay at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from services.config import Settings
from services.providers.base import Provider
from services.providers.demo import DemoProvider


@dataclass(frozen=True)
class ProviderSpec:
    """One provider: `configured_by` names the settings (any one set enables it;
    none means always on) and `variables` says how an operator sets them."""

    name: str
    build: Callable[[Settings], Provider]
    suggested_models: tuple[str, ...]
    """Models to list in `GET /v1/models`, without the prefix; any name is accepted."""
    configured_by: tuple[str, ...] = ()
    variables: str = ""

    def configured(self, settings: Settings) -> bool:
        if not self.configured_by:
            return True
        # An empty variable (`OPENAI_API_KEY=`) means unset, as it does to the SDKs' users.
        values = (getattr(settings, field) for field in self.configured_by)
        return any((v.get_secret_value() if isinstance(v, SecretStr) else v) for v in values if v)


def _openai(settings: Settings) -> Provider:
    from services.providers.openai import OpenAIProvider  # the SDK, only when needed

    return OpenAIProvider(settings)


def _anthropic(settings: Settings) -> Provider:
    from services.providers.anthropic import AnthropicProvider  # the SDK, only when needed

    return AnthropicProvider(settings)


PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        "demo",
        lambda settings: DemoProvider(settings.demo_tokens_per_s),
        suggested_models=("echo", "story", "tool"),
    ),
    ProviderSpec(
        "openai",
        _openai,
        suggested_models=("gpt-4o-mini", "gpt-4o"),
        configured_by=("openai_api_key", "openai_base_url"),
        variables="OPENAI_API_KEY or OPENAI_BASE_URL",
    ),
    ProviderSpec(
        "anthropic",
        _anthropic,
        suggested_models=("claude-sonnet-4-5", "claude-haiku-4-5"),
        configured_by=("anthropic_api_key", "anthropic_base_url"),
        variables="ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL",
    ),
)
BY_NAME: dict[str, ProviderSpec] = {spec.name: spec for spec in PROVIDERS}
KNOWN_PROVIDERS = tuple(BY_NAME)


def build_providers(settings: Settings) -> dict[str, Provider]:
    """The providers a worker can call: one SDK client each, closed by `close_providers`.

    Built inside the worker's event loop (arq's on_startup), so the clients'
    connection pools belong to that loop.
    """
    return {spec.name: spec.build(settings) for spec in PROVIDERS if spec.configured(settings)}


async def close_providers(providers: dict[str, Provider]) -> None:
    """Close every provider's HTTP client (at worker shutdown)."""
    for provider in providers.values():
        await provider.aclose()


def configured_provider_names(settings: Settings) -> list[str]:
    """Providers the API accepts: demo always, the others once configured."""
    return [spec.name for spec in PROVIDERS if spec.configured(settings)]
