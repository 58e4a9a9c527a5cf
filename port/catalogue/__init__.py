"""The SQL catalogue: Repo -> App -> Release -> Flavour, and index runs."""
