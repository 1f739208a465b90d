"""The OpenAI-compatible HTTP proxy: a thin aiohttp transport over the routing core."""
