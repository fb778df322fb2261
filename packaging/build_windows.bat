@echo off
rem Double-clickable wrapper around build_windows.ps1 (same options: -SkipKernels -SkipSelfTest).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0build_windows.ps1" %*
exit /b %ERRORLEVEL%
