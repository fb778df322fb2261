# Build the Windows bundle of Nibble Studio from a checkout (PowerShell 5+):
#   dist\Nibble Studio\Nibble Studio.exe       the app (windowed), with its icon and version resource
#   dist\Nibble Studio\nibble-studio-cli.exe   same program with a console: nibble-studio-cli.exe --self-test
#   dist\nibble-studio-<version>-windows-x64.zip
# Steps: kernel fatbins with nvcc (CUDA toolkit; needs the MSVC host compiler cl.exe on PATH, e.g. from a
# "x64 Native Tools" prompt), PyInstaller (packaging\nibble_studio.spec), zip, then the bundle's --self-test.
# Usage:  powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1 [-SkipKernels] [-SkipSelfTest]
# Needs the app's dependencies in the Python on PATH (or $env:PYTHON): pip install -e ".[packaging]"
# NOT RUN on Windows by us (no Windows machine available): see packaging\README.md.
param([switch]$SkipKernels, [switch]$SkipSelfTest)
$ErrorActionPreference = "Stop"
$Repo = Split-Path -Parent $PSScriptRoot
Set-Location $Repo
$Py = if ($env:PYTHON) { $env:PYTHON } else { "python" }
$App = "Nibble Studio"
$Version = & $Py -c "from gpu.version import __version__; print(__version__)"
if ($LASTEXITCODE -ne 0) { throw "cannot read the version with $Py" }

& $Py -c "import torch, diffusers, transformers, PySide6, appdirs, safetensors"
if ($LASTEXITCODE -ne 0) { throw "the app's dependencies are not importable by $Py (pip install -e `".[packaging]`")" }
# Asked through the exit status alone: with $ErrorActionPreference = "Stop", PowerShell 5.1 turns a native program's
# redirected stderr ("import PyInstaller"'s traceback, even sent to $null) into a terminating error, and the script
# stopped instead of installing PyInstaller. find_spec writes nothing to stderr.
& $Py -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('PyInstaller') is None)"
if ($LASTEXITCODE -ne 0) { & $Py -m pip install -q "pyinstaller>=6"; if ($LASTEXITCODE -ne 0) { throw "pip failed" } }

Write-Host "== 1/4 kernel fatbins (nvcc) -> resources\kernels\"
# The spec reads it: the prebuilt kernels are all checked against kernels_cu\ and shipped, or all left out.
$env:NIBBLE_SKIP_KERNELS = if ($SkipKernels) { "1" } else { "0" }
if ($SkipKernels) {
    Write-Host "   skipped (-SkipKernels): the bundle ships no prebuilt kernels (resources\kernels is left out)"
} else {
    & $Py packaging\build_kernels.py --out resources\kernels
    if ($LASTEXITCODE -ne 0) { throw "kernel build failed (no nvcc? use -SkipKernels)" }
}

Write-Host "== 2/4 PyInstaller (one folder, windowed + console twin)"
if (Test-Path "dist\$App") { Remove-Item -Recurse -Force "dist\$App" }
& $Py -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build\pyinstaller `
    packaging\nibble_studio.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }

Write-Host "== 3/4 zip"
$Zip = "dist\nibble-studio-$Version-windows-x64.zip"
if (Test-Path $Zip) { Remove-Item $Zip }
Compress-Archive -Path "dist\$App" -DestinationPath $Zip
$Bytes = (Get-ChildItem -Recurse -File "dist\$App" | Measure-Object -Sum Length).Sum
Write-Host ("   bundle {0:N0} MiB; {1} {2:N0} MiB" -f ($Bytes / 1MB), $Zip, ((Get-Item $Zip).Length / 1MB))

Write-Host "== 4/4 self-test of the bundle (temporary data folder)"
if ($SkipSelfTest) {
    Write-Host "   skipped (-SkipSelfTest)"
} else {
    $Tmp = Join-Path ([IO.Path]::GetTempPath()) ("nibble-selftest-" + [guid]::NewGuid())
    New-Item -ItemType Directory $Tmp | Out-Null
    $env:NIBBLE_DATA_DIR = $Tmp
    & "dist\$App\nibble-studio-cli.exe" --self-test
    $Rc = $LASTEXITCODE
    Remove-Item Env:\NIBBLE_DATA_DIR
    Remove-Item -Recurse -Force $Tmp
    if ($Rc -ne 0) { throw "self-test failed ($Rc)" }
}
Write-Host "done: dist\$App\$App.exe"
