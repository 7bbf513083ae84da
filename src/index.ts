/** tun6in4: the library entry point. The packet layer and the encapsulator need no TUN and no root. */
export * from './packet/index.js';
export * from './encap/index.js';
