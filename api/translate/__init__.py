"""Front-door requests (OpenAI Chat Completions, Anthropic Messages) to `GenerationRequest`s."""
