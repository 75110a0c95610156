# The toolkit in a container, installed the way the README installs it.
#   CPU image (default):  docker build -t clipvil-nav .
#   CUDA image:           docker build --build-arg TORCH_VARIANT=cu124 -t clipvil-nav:cuda .
#                         docker run --gpus all clipvil-nav:cuda python -m agents.train r2r --device cuda
# The default command runs the main job on the built-in world; mount real data to use it:
#   docker run --rm -v /path/to/DATA:/data clipvil-nav python -m agents.train r2r --backtranslate --data-dir /data
FROM python:3.11-slim

# torch's wheel index for this image: cpu, or a CUDA build such as cu124 (the wheels bring their CUDA runtime;
# the host needs the NVIDIA driver and container toolkit)
ARG TORCH_VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
    CLIPVIL_CACHE=/home/clipvil/.cache/clipvil

RUN pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "torch>=2.1,<3" "torchvision>=0.16,<1" \
    && useradd --create-home --uid 1000 clipvil

WORKDIR /opt/clipvil-nav
COPY pyproject.toml README.md ./
COPY agents agents
COPY envs envs
COPY eval eval
COPY features features
COPY tasks tasks
RUN pip install --no-cache-dir -e . && chown -R 1000 /opt/clipvil-nav

USER 1000
CMD ["python", "-m", "agents.train", "r2r", "--backtranslate"]
