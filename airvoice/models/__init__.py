"""Which weights the server needs and where they live: presets (``registry``), the cache
layout and lock file (``store``), and the download (``prefetch``, needs huggingface_hub)."""
