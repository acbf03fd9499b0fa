"""Provider registry: which `PROVIDER/` prefixes this deployment can serve."""

from __future__ import annotations

from services.config import Settings
from services.providers.base import Provider
from services.providers.demo import DemoProvider

KNOWN_PROVIDERS = ("openai", "anthropic", "demo")


def build_providers(settings: Settings) -> dict[str, Provider]:
    """The providers a worker can call, built from settings (clients are created lazily)."""
    providers: dict[str, Provider] = {"demo": DemoProvider(settings.demo_tokens_per_s)}
    return providers


def configured_provider_names(settings: Settings) -> list[str]:
    """Providers the API accepts: demo always, the others once configured."""
    names = ["demo"]
    if settings.openai_configured:
        names.append("openai")
    if settings.anthropic_configured:
        names.append("anthropic")
    return names
