"""Provider registry: which `PROVIDER/` prefixes this deployment can serve."""

from __future__ import annotations

from services.config import Settings
from services.providers.anthropic import AnthropicProvider
from services.providers.base import Provider
from services.providers.demo import DemoProvider
from services.providers.openai import OpenAIProvider

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "demo": DemoProvider,
}
KNOWN_PROVIDERS = tuple(PROVIDER_CLASSES)


def build_providers(settings: Settings) -> dict[str, Provider]:
    """The providers a worker can call: one SDK client each, closed by `close_providers`.

    Built inside the worker's event loop (arq's on_startup), so the clients'
    connection pools belong to that loop.
    """
    providers: dict[str, Provider] = {"demo": DemoProvider(settings.demo_tokens_per_s)}
    if settings.openai_configured:
        providers["openai"] = OpenAIProvider(settings)
    if settings.anthropic_configured:
        providers["anthropic"] = AnthropicProvider(settings)
    return providers


async def close_providers(providers: dict[str, Provider]) -> None:
    """Close every provider's HTTP client (at worker shutdown)."""
    for provider in providers.values():
        await provider.aclose()


def configured_provider_names(settings: Settings) -> list[str]:
    """Providers the API accepts: demo always, the others once configured."""
    names = ["demo"]
    if settings.openai_configured:
        names.append("openai")
    if settings.anthropic_configured:
        names.append("anthropic")
    return names
