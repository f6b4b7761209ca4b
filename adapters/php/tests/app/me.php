<?php
session_start();
header('Content-Type: application/json');
echo json_encode(['sid' => session_id(), 'session' => (object) $_SESSION], JSON_UNESCAPED_UNICODE);
