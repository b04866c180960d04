import os
import tempfile

# Tests never reach the network, and keep their parsed-notes cache out of the user's ~/.cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("APVG_HF_CACHE", tempfile.mkdtemp(prefix="apvg_hf_test_cache_"))
