FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
EXPOSE 5001
CMD ["workbench", "up", "--host", "0.0.0.0"]
