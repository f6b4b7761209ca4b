<?php
session_start();
session_regenerate_id(true);
$_SESSION['user'] = $_GET['u'] ?? 'ann';
$_SESSION['pojun.tech'] = ['items' => [1, 2]];
$_SESSION['greeting'] = "José 🙂";
$_SESSION['ratio'] = 1.5;
header('Content-Type: application/json');
echo json_encode(['sid' => session_id()]);
