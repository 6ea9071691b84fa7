"""The neural engines, framework-free: they never import pipecat."""
