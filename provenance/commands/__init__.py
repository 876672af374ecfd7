"""Click command groups, one module per area; ``provenance.cli`` assembles them."""
