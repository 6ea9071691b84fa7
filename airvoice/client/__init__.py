"""The client side: ``VoiceClient`` and its audio I/O (no torch, no pipecat)."""

from airvoice.client.audio import (
    ArrayMicrophone,
    ClockedPlayer,
    MemorySink,
    SoundDeviceMicrophone,
    SoundDevicePlayer,
    list_devices,
    read_wav,
    write_wav,
)
from airvoice.client.client import Reply, VoiceClient
from airvoice.client.errors import (
    AuthError,
    BadSettingsError,
    ClientError,
    ConnectError,
    ServerBusyError,
)
from airvoice.client.jitter import JitterBuffer
from airvoice.client.latency import TurnLatency
from airvoice.client.sync import ask

__all__ = [
    "ArrayMicrophone",
    "AuthError",
    "BadSettingsError",
    "ClientError",
    "ClockedPlayer",
    "ConnectError",
    "JitterBuffer",
    "MemorySink",
    "Reply",
    "ServerBusyError",
    "SoundDeviceMicrophone",
    "SoundDevicePlayer",
    "TurnLatency",
    "VoiceClient",
    "ask",
    "list_devices",
    "read_wav",
    "write_wav",
]
