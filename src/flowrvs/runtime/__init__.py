"""The process a run lives in: precision, devices, distributed processes, memory, the machine."""
