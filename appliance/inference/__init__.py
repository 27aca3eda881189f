"""Running models: the manifest of model files, and the backends that execute them."""
