"""What a call costs: a price table for current OpenAI and Anthropic models, overridable by [pricing] in the config.

Prices are list prices in USD per million tokens (standard tier, no batch or cache discounts),
as published by the providers in 2025. A dated model name (e.g. `gpt-4o-mini-2024-07-18`,
`claude-sonnet-4-5-20250929`) takes the price of the longest known name it starts with.
"""

from __future__ import annotations

from collections.abc import Mapping

from generator.config import PriceSection

# model name (or prefix) -> (input, output) USD per million tokens
BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-haiku": (0.25, 1.25),
}


class PriceTable:
    def __init__(self, overrides: Mapping[str, PriceSection] | None = None) -> None:
        self.prices = dict(BUILTIN_PRICES)
        for model, price in (overrides or {}).items():
            self.prices[model] = (price.input_per_mtok, price.output_per_mtok)

    def price(self, model: str) -> tuple[float, float] | None:
        """(input, output) USD per million tokens, or None for a model the table does not know."""
        if model in self.prices:
            return self.prices[model]
        prefixes = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for this usage; 0 for a model without a price (e.g. a local server), which reports show as unknown_price()."""
        price = self.price(model)
        if price is None:
            return 0.0
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


def unknown_price(model: str) -> str:
    """What a report says instead of a cost for a model without a price: never 0, never another model's rates."""
    return f'unknown price (add [pricing."{model}"] to synthgate.toml)'


def estimate_tokens(text: str) -> int:
    """A rough token count (about 4 characters per token for English) for budgets and dry runs."""
    return len(text) // 4 + 1
