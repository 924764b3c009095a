# The lab-runner image: runs scenarios inside the compose network (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends docker.io make && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY lab ./lab
COPY scenarios ./scenarios
RUN pip install --no-cache-dir '.[fast]'
ENTRYPOINT ["python", "-m", "lab"]
CMD ["status"]
