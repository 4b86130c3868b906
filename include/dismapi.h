/*
 * dismapi.h - a DismAPI-shaped C interface to imagehealth, for people
 * porting DISM code (DismCheckImageHealth, DismRestoreImageHealth) to
 * Linux.  Implemented in libimagehealth (src/core/dismapi.c) on top of the
 * ih_* API of imagehealth.h.
 *
 * Differences from Windows' DismAPI.h, all deliberate:
 *
 *  - Strings are UTF-8 `const char *` (PCWSTR is defined as that), and the
 *    image is a WIM/ESD/split WIM *file*: DismOpenSession(ImagePath, NULL,
 *    NULL, &Session) opens it (all images; DismOpenSessionIndex for one).
 *  - HANDLE CancelEvent is a file descriptor that becomes readable when the
 *    operation must stop (an eventfd, a pipe's read end), passed as
 *    DISM_FD_HANDLE(fd); DismCreateCancelEvent / DismSetCancelEvent /
 *    DismCloseCancelEvent make and signal an eventfd for you.  fd 0 cannot be
 *    passed (it would be NULL).
 *  - A cancelled restore leaves the image byte for byte as it was (DISM says
 *    "state unknown") and returns HRESULT_FROM_WIN32(ERROR_CANCELLED).
 *  - The Progress callback (Current, Total, UserData) is called on the
 *    caller's own thread, from the loop in which the call waits for its
 *    worker threads, never from a worker; Total is always 1000 and Current
 *    never decreases.
 *  - The image's Group Policy LocalSourcePath names Windows paths
 *    ("C:\Sources\install.wim"); DismSetSourcePathMap says which local
 *    directory such a prefix is on this machine.  Without a map entry a
 *    policy path is reported as unmapped, never guessed.
 *  - DismGetLastErrorMessage (per thread, like DISM's) names the files a
 *    failed restore could not find, not just 0x800F081F.
 *  - There is no Windows Update: LimitAccess = FALSE allows the repair
 *    content server configured for imagehealth (none by default).
 *
 * All functions are thread-safe; one session runs one operation at a time
 * (a second gets DISMAPI_E_BUSY).
 */
#ifndef IMAGEHEALTH_DISMAPI_H
#define IMAGEHEALTH_DISMAPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------- Windows types */
#ifndef DISMAPI_NO_WINTYPES
typedef int32_t HRESULT;
typedef int BOOL;
typedef unsigned int UINT;
typedef void VOID;
typedef void *PVOID;
typedef void *HANDLE;
typedef const char *PCWSTR; /* UTF-8 here */
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#define S_OK ((HRESULT)0)
#define S_FALSE ((HRESULT)1)
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#endif
#define CALLBACK
#define WINAPI

/* A descriptor as a CancelEvent HANDLE, and back. */
#define DISM_FD_HANDLE(fd) ((HANDLE)(intptr_t)(fd))
#define DISM_HANDLE_FD(h) ((int)(intptr_t)(h))

/* --------------------------------------------------------------- HRESULTs */
/* Microsoft's numbers (DismAPI.h, winerror.h, CBS). */
#define DISMAPI_S_RELOAD_IMAGE_SESSION_REQUIRED ((HRESULT)0x00000001)
#define DISMAPI_E_DISMAPI_NOT_INITIALIZED ((HRESULT)0xC0040001)
#define DISMAPI_E_SHUTDOWN_IN_PROGRESS ((HRESULT)0xC0040002)
#define DISMAPI_E_OPEN_SESSION_HANDLES ((HRESULT)0xC0040003)
#define DISMAPI_E_INVALID_DISM_SESSION ((HRESULT)0xC0040004)
#define DISMAPI_E_INVALID_IMAGE_INDEX ((HRESULT)0xC0040005)
#define DISMAPI_E_INVALID_IMAGE_NAME ((HRESULT)0xC0040006)
#define DISMAPI_E_BUSY ((HRESULT)0x800F0902)
#define CBS_E_SOURCE_MISSING ((HRESULT)0x800F081F)
#define CBS_E_DOWNLOAD_FAILURE ((HRESULT)0x800F0906)
#define CBS_E_GROUPPOLICY_DISALLOWED ((HRESULT)0x800F0907)
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#define E_INVALIDARG ((HRESULT)0x80070057)
#define E_ACCESSDENIED ((HRESULT)0x80070005)
#define E_UNEXPECTED ((HRESULT)0x8000FFFF)
#define HRESULT_ERROR_FILE_NOT_FOUND ((HRESULT)0x80070002)
#define HRESULT_ERROR_READ_FAULT ((HRESULT)0x8007001E)
#define HRESULT_ERROR_DISK_FULL ((HRESULT)0x80070070)
#define HRESULT_ERROR_FILE_CORRUPT ((HRESULT)0x80070570)
#define HRESULT_ERROR_CANCELLED ((HRESULT)0x800704C7)
#define WIMGAPI_E_NOT_A_WIM ((HRESULT)0xC1420113)

/* ------------------------------------------------------------------ types */
typedef UINT DismSession;
#define DISM_SESSION_DEFAULT 0

typedef enum _DismLogLevel {
	DismLogErrors = 0,
	DismLogErrorsWarnings,
	DismLogErrorsWarningsInfo,
} DismLogLevel;

typedef enum _DismImageHealthState {
	DismImageHealthy = 0,
	DismImageRepairable,
	DismImageNonRepairable,
} DismImageHealthState;

typedef struct _DismString {
	PCWSTR Value;
} DismString;

typedef void(CALLBACK *DISM_PROGRESS_CALLBACK)(UINT Current, UINT Total, PVOID UserData);

/* -------------------------------------------------------------- functions */
/* LogFilePath and ScratchDirectory may be NULL (and are not used). */
HRESULT WINAPI DismInitialize(DismLogLevel LogLevel, PCWSTR LogFilePath, PCWSTR ScratchDirectory);
/* DISMAPI_E_OPEN_SESSION_HANDLES while sessions are open. */
HRESULT WINAPI DismShutdown(void);

/* ImagePath: a .wim/.esd/.swm file.  WindowsDirectory and SystemDrive must
 * be NULL (an applied image is not a session here). */
HRESULT WINAPI DismOpenSession(PCWSTR ImagePath, PCWSTR WindowsDirectory, PCWSTR SystemDrive,
			       DismSession *Session);
/* Extension: one image (1-based) of the file. */
HRESULT WINAPI DismOpenSessionIndex(PCWSTR ImagePath, UINT ImageIndex, DismSession *Session);
HRESULT WINAPI DismCloseSession(DismSession Session);

/* Extension: the image's policy names WindowsPrefix ("C:\Sources"); on this
 * machine it is LocalPath.  Copied; any number of entries. */
HRESULT WINAPI DismSetSourcePathMap(DismSession Session, PCWSTR WindowsPrefix, PCWSTR LocalPath);

HRESULT WINAPI DismCheckImageHealth(DismSession Session, BOOL ScanImage, HANDLE CancelEvent,
				    DISM_PROGRESS_CALLBACK Progress, PVOID UserData,
				    DismImageHealthState *ImageHealth);

/* S_OK: the image is healthy now.  CBS_E_SOURCE_MISSING: some damage is
 * left (DismGetLastErrorMessage names it); HRESULT_ERROR_CANCELLED:
 * cancelled, the image unchanged. */
HRESULT WINAPI DismRestoreImageHealth(DismSession Session, PCWSTR *SourcePaths,
				      UINT SourcePathCount, BOOL LimitAccess,
				      HANDLE CancelEvent, DISM_PROGRESS_CALLBACK Progress,
				      PVOID UserData);

/* The calling thread's last error message; free it with DismDelete. */
HRESULT WINAPI DismGetLastErrorMessage(DismString **ErrorMessage);
/* Frees a structure this API returned; E_INVALIDARG for anything else. */
HRESULT WINAPI DismDelete(VOID *DismStructure);

/* Extensions: an eventfd as a CancelEvent.  DismCreateCancelEvent returns
 * NULL on failure. */
HANDLE WINAPI DismCreateCancelEvent(void);
HRESULT WINAPI DismSetCancelEvent(HANDLE CancelEvent);
HRESULT WINAPI DismCloseCancelEvent(HANDLE CancelEvent);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
