"""Provider registry: which `PROVIDER/` prefixes this deployment can serve.

Each provider is declared once, in `PROVIDERS`: its class, how a worker builds
it, and which settings configure it. The API's checks, its error hints, the
model list and the worker's clients are all derived from that one declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from services.config import Settings
from services.providers.anthropic import AnthropicProvider
from services.providers.base import Provider
from services.providers.demo import DemoProvider
from services.providers.openai import OpenAIProvider


@dataclass(frozen=True)
class ProviderSpec:
    """One provider: `configured_by` names the settings (any one set enables it;
    none means always on) and `variables` says how an operator sets them."""

    name: str
    cls: type[Provider]
    build: Callable[[Settings], Provider]
    configured_by: tuple[str, ...] = ()
    variables: str = ""

    def configured(self, settings: Settings) -> bool:
        if not self.configured_by:
            return True
        # An empty variable (`OPENAI_API_KEY=`) means unset, as it does to the SDKs' users.
        values = (getattr(settings, field) for field in self.configured_by)
        return any((v.get_secret_value() if isinstance(v, SecretStr) else v) for v in values if v)


PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec("demo", DemoProvider, lambda s: DemoProvider(s.demo_tokens_per_s)),
    ProviderSpec(
        "openai",
        OpenAIProvider,
        OpenAIProvider,
        configured_by=("openai_api_key", "openai_base_url"),
        variables="OPENAI_API_KEY or OPENAI_BASE_URL",
    ),
    ProviderSpec(
        "anthropic",
        AnthropicProvider,
        AnthropicProvider,
        configured_by=("anthropic_api_key", "anthropic_base_url"),
        variables="ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL",
    ),
)
BY_NAME: dict[str, ProviderSpec] = {spec.name: spec for spec in PROVIDERS}
KNOWN_PROVIDERS = tuple(BY_NAME)
PROVIDER_CLASSES: dict[str, type[Provider]] = {spec.name: spec.cls for spec in PROVIDERS}


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
