"""Checkpoint formats, all in one place: Orbax (written by this codebase), the imported layouts
(sentence-transformers, Hugging Face and GGUF Gemma 3 decoders), the exporters and the fetch of
the released artefacts' files. `loading.load_checkpoint` reads any embedding checkpoint."""
