"""Nornir inventory plugins of eggo-nornir (installed as `eggo_nornir.inventory`).

`EggoInventory` is registered under the entry-point group `nornir.plugins.inventory`,
so `InitNornir(inventory={"plugin": "EggoInventory", "options": {"config_file": ...}})`
works in any Nornir project once eggo-nornir is installed.
"""

from eggo_nornir.inventory.eggo import EggoInventory, bastion_jump, host_groups, ssh_extras

__all__ = ["EggoInventory", "bastion_jump", "host_groups", "ssh_extras"]
