# CPU image of the toolkit. Build: docker build -t clipvil-nav .
# Run the main job on the built-in world:   docker run --rm clipvil-nav
# Use real data: docker run --rm -v /path/to/DATA:/data clipvil-nav python -m agents.train r2r --data-dir /data
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/clipvil-nav
# CPU wheels of torch keep the image small; on a GPU host install the CUDA build instead.
RUN pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY agents agents
COPY envs envs
COPY features features
COPY tasks tasks
COPY eval eval
RUN pip install -e .
CMD ["python", "-m", "agents.train", "r2r", "--backtranslate"]
