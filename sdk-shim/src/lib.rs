//! The provider proxy: forwards OpenAI/Anthropic calls and captures them as spans.
