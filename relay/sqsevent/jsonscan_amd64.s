//go:build !purego

#include "textflag.h"

// func indexSpecial(b []byte) int
//
// SSE2, which every amd64 has: per 16 bytes, the quotes, the backslashes
// and the bytes equal to their minimum with 0x1f (the control bytes) are
// marked, and the first mark found with BSF. The last 15 bytes or fewer
// are read one at a time, never past the slice.
TEXT ·indexSpecial(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX
	XORQ AX, AX
	MOVQ $0x2222222222222222, DX
	MOVQ DX, X1
	PUNPCKLQDQ X1, X1
	MOVQ $0x5c5c5c5c5c5c5c5c, DX
	MOVQ DX, X2
	PUNPCKLQDQ X2, X2
	MOVQ $0x1f1f1f1f1f1f1f1f, DX
	MOVQ DX, X3
	PUNPCKLQDQ X3, X3

vectors:
	LEAQ 16(AX), DX
	CMPQ DX, BX
	JHI  bytes
	MOVOU (SI)(AX*1), X0
	MOVO  X0, X4
	PCMPEQB X1, X4
	MOVO  X0, X5
	PCMPEQB X2, X5
	MOVO  X0, X6
	PMINUB X3, X6
	PCMPEQB X0, X6
	POR   X5, X4
	POR   X6, X4
	PMOVMSKB X4, CX
	TESTL CX, CX
	JNZ   found
	MOVQ  DX, AX
	JMP   vectors

found:
	BSFL CX, CX
	ADDQ CX, AX
	MOVQ AX, ret+24(FP)
	RET

bytes:
	CMPQ AX, BX
	JAE  done
	MOVBLZX (SI)(AX*1), CX
	CMPB CX, $0x22
	JEQ  done
	CMPB CX, $0x5c
	JEQ  done
	CMPB CX, $0x20
	JCS  done
	INCQ AX
	JMP  bytes

done:
	MOVQ AX, ret+24(FP)
	RET
