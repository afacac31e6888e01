"""The hands: sandboxes where agent tools run. Knows containers and files, never prompts or models."""
