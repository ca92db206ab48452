/** The mount's face (what cli/ may import): start a mount, and reach a running one. */
export { startMount, untilSignal, viewMountpoint, type MountHandle, type MountOptions, type MountStatus } from './daemon.js';
export { connectControl, controlOf, probeSocket, remoteStore, socketPath, viaServer, withStore, type ControlClient } from './client.js';
export { lazyUnmount, mounts, mountsUnder, prepareMountpoint, probe, run, type Liveness, type MountEntry, type PrepareResult } from './mountinfo.js';
export { openLazy, type LazyMount, type LazyMountOptions } from './lazy.js';
