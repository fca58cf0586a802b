/**
 * kernel/errno.ts: the errno values kernel paths in the model return
 * (include/uapi/asm-generic/errno-base.h), negated at the call site as the
 * kernel does (`return -EAGAIN`).
 */

export const EPERM = 1;
export const ENOENT = 2;
export const EIO = 5;
export const EEXIST = 17;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EBUSY = 16;
export const EINVAL = 22;
export const ENOSYS = 38;
