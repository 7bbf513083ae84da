;; The bulk of the Internet checksum as WebAssembly SIMD, for packets in a packet arena
;; (src/packet/arena.ts). src/packet/arena.ts embeds this module assembled (test/arena.test.ts
;; assembles this text again with wabt and compares).
(module
  (import "arena" "memory" (memory 1))
  ;; The one's-complement sum of the little-endian 16-bit words in memory[p, p + n), n a multiple
  ;; of 32, folded to 16 bits. Little-endian words, because RFC 1071 §2(B) lets the sum be taken in
  ;; either byte order and swapped once at the end (the caller swaps).
  (func (export "sum32") (param $p i32) (param $n i32) (result i32)
    (local $end i32) (local $a v128) (local $b v128) (local $s i32)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (block $done
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      ;; two accumulators of four 32-bit lanes; each step adds the eight 16-bit words of 16 bytes
      ;; pairwise into them, so a lane grows by < 2^17 a step and cannot carry out below 512 KiB
      (loop $step
        (local.set $a (i32x4.add (local.get $a) (i32x4.extadd_pairwise_i16x8_u (v128.load (local.get $p)))))
        (local.set $b (i32x4.add (local.get $b) (i32x4.extadd_pairwise_i16x8_u (v128.load offset=16 (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (br_if $step (i32.lt_u (local.get $p) (local.get $end)))))
    ;; 2^16 ≡ 1: fold each lane's carries back in (< 2^17 a lane), then the eight lanes (< 2^20)
    (local.set $a (i32x4.add
      (v128.and (local.get $a) (v128.const i32x4 0xffff 0xffff 0xffff 0xffff))
      (i32x4.shr_u (local.get $a) (i32.const 16))))
    (local.set $b (i32x4.add
      (v128.and (local.get $b) (v128.const i32x4 0xffff 0xffff 0xffff 0xffff))
      (i32x4.shr_u (local.get $b) (i32.const 16))))
    (local.set $a (i32x4.add (local.get $a) (local.get $b)))
    (local.set $s (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $a)) (i32x4.extract_lane 1 (local.get $a)))
      (i32.add (i32x4.extract_lane 2 (local.get $a)) (i32x4.extract_lane 3 (local.get $a)))))
    (local.set $s (i32.add (i32.and (local.get $s) (i32.const 0xffff)) (i32.shr_u (local.get $s) (i32.const 16))))
    (i32.add (i32.and (local.get $s) (i32.const 0xffff)) (i32.shr_u (local.get $s) (i32.const 16)))))
