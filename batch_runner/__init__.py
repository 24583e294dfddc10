"""batch-runner: a YAML manifest of image+prompt jobs in, verified videos from the Wiro API out."""

__version__ = "0.1.0"

DEFAULT_MODEL = "PixVerse/image-to-video-v5"
DEFAULT_API_BASE = "https://api.wiro.ai/v1"
DEFAULT_SOCKET_URL = "wss://socket.wiro.ai/v1"
