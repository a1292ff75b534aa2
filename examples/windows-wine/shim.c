/* bcryptprimitives.dll for Wine 8 (Debian 12), which has none: Go >= 1.22
 * binaries need its ProcessPrng at start ("bcryptprimitives.dll not
 * found"). Implemented over advapi32's RtlGenRandom (SystemFunction036),
 * which Wine has. Built by run.sh with x86_64-w64-mingw32-gcc. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE h, DWORD reason, LPVOID reserved) { return TRUE; }
