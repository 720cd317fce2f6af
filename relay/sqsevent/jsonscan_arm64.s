//go:build !purego

#include "textflag.h"

// func indexSpecial(b []byte) int
//
// NEON: per 16 bytes, the quotes, the backslashes and the bytes equal to
// their minimum with 0x1f (the control bytes) are marked; the marks are
// moved to two general registers, and the first found with RBIT and CLZ
// (little-endian: the lowest bits are the first bytes). The last 15 bytes
// or fewer are read one at a time, never past the slice.
TEXT ·indexSpecial(SB), NOSPLIT, $0-32
	MOVD b_base+0(FP), R0
	MOVD b_len+8(FP), R1
	MOVD $0, R2
	MOVD $0x22, R3
	VDUP R3, V1.B16
	MOVD $0x5c, R3
	VDUP R3, V2.B16
	MOVD $0x1f, R3
	VDUP R3, V3.B16

vectors:
	ADD  $16, R2, R4
	CMP  R1, R4
	BHI  bytes
	ADD  R0, R2, R5
	VLD1 (R5), [V0.B16]
	VCMEQ V0.B16, V1.B16, V4.B16
	VCMEQ V0.B16, V2.B16, V5.B16
	VUMIN V0.B16, V3.B16, V6.B16
	VCMEQ V0.B16, V6.B16, V6.B16
	VORR V4.B16, V5.B16, V4.B16
	VORR V4.B16, V6.B16, V4.B16
	VMOV V4.D[0], R6
	VMOV V4.D[1], R7
	ORR  R6, R7, R8
	CBNZ R8, found
	MOVD R4, R2
	B    vectors

found:
	CBNZ R6, first
	ADD  $8, R2, R2
	MOVD R7, R6

first:
	RBIT R6, R6
	CLZ  R6, R6
	ADD  R6>>3, R2, R2
	MOVD R2, ret+24(FP)
	RET

bytes:
	CMP  R1, R2
	BHS  done
	MOVBU (R0)(R2), R3
	CMP  $0x22, R3
	BEQ  done
	CMP  $0x5c, R3
	BEQ  done
	CMP  $0x20, R3
	BLO  done
	ADD  $1, R2, R2
	B    bytes

done:
	MOVD R2, ret+24(FP)
	RET
