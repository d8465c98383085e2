"""Drivers for real instruments, registered in the ``labsat.devices`` entry-point group."""
