# bench/cpu.sh - sourced by the bench scripts: facts about this CPU, and the
# OpenBLAS kernel to use. Debian's OpenBLAS misdetects AVX-512 Intel CPUs, so
# the core type is chosen from the CPU flags, never assumed: Cooperlake needs
# AVX-512 with bf16 (it would crash on an AVX2-only CPU such as AMD Zen 3),
# SkylakeX plain AVX-512, Haswell AVX2+FMA (Zen and Intel alike).
# Sets and exports OPENBLAS_CORETYPE (unless already set), and sets CPU_NAME,
# CPU_ISA (amx | avx512 | avx2 | sse) for the reports.
_flags=$(grep -m1 '^flags' /proc/cpuinfo)
_has() { case " $_flags " in *" $1 "*) return 0 ;; esac; return 1; }
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if _has avx512_bf16 && _has avx512f; then OPENBLAS_CORETYPE=Cooperlake
    elif _has avx512f && _has avx512vl; then OPENBLAS_CORETYPE=SkylakeX
    elif _has avx2 && _has fma; then OPENBLAS_CORETYPE=Haswell
    else OPENBLAS_CORETYPE=Prescott; fi
fi
export OPENBLAS_CORETYPE
if _has amx_bf16; then CPU_ISA=amx
elif _has avx512f; then CPU_ISA=avx512
elif _has avx2; then CPU_ISA=avx2
else CPU_ISA=sse; fi
CPU_NAME=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
unset _flags
