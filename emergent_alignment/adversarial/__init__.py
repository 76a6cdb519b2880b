"""Zero-shot and adversarial use: guarded generation, the attack suite, red teaming, a guarded server.

See docs/adversarial.md. Submodules import torch and transformers lazily where they can, so the
command line stays fast to start.
"""
