"""Job files: TOML schemas (`schema`), the kind → module registry (`registry`) and output helpers (`output`)."""
