"""The drop-in front doors (OpenAI Chat Completions, Anthropic Messages): request
translation into a generation, the door streams and their errors in each API's shape."""
