"""A local testbed: real systemd machines on a private bridge, plus an offline bundle.

Why it exists: a deployer tested only against mocks is not tested. These machines are
systemd-nspawn containers with systemd as PID 1 and sshd, each in its own network
namespace on a bridge that has no route out, so eggo-nornir can deploy a real cluster
over real SSH on one host (docs/testbed.md). Modules:

- `proc`: one subprocess wrapper whose errors name the step and the command;
- `paths`: where caches and the default output dir live (outside the repo);
- `rootfs`: the debootstrap root filesystem, built once and cached;
- `network`: the bridge, the per-machine netns and veth pair;
- `machine`: per-machine root preparation and the nspawn command line;
- `state`: the JSON state file that lets `down`/`status` work from another process;
- `lifecycle`: `up`, `down`, `status`;
- `deployyaml`: the ready-to-use deploy.yaml for the machines;
- `images`, `bundle`: the offline package bundle (debs, binaries, images).
"""
