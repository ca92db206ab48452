/** Image export's face (what cli/ may import): OCI layouts and rootfs tarballs of a profile. */
export * from './oci.js';
