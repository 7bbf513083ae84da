/**
 * tun6in4: the library entry point. The packet layer and the encapsulator need no TUN and no
 * root (the embedder's path); openTunnel runs a tunnel on this host as `tun6in4 run` does.
 */
export * from './packet/index.js';
export * from './encap/index.js';
export * from './io/index.js';
export * from './engine/index.js';
export { configureInterface, removeRoutes, sourceAddressToward, type InterfaceOptions } from './tun/interface.js';
export { BUILD_NATIVE_COMMAND, NativeAddonError, nativeAddonInfo, type NativeAddonInfo } from './io/native.js';
export { buildNativeAddon, NativeBuildError, type NativeBuildOptions } from './io/native-build.js';
