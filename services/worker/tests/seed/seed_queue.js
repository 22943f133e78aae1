// Ejemplo con RabbitMQ
const amqp = require('amqplib');

// Productor (servicio que env铆a mensajes)
async function producer() {
  try {
    // Conectar al servidor RabbitMQ
    const connection = await amqp.connect('amqp://localhost');
    const channel = await connection.createChannel();
    
    // Declarar la cola
    const queue = 'tasks_queue';
    await channel.assertQueue(queue, { durable: true });
    
    // Enviar mensajes
    for (let i = 1; i <= 5; i++) {
      const message = { 
        id: i, 
        task: `Tarea ${i}`,
        timestamp: new Date().toISOString()
      };
      
      channel.sendToQueue(
        queue,
        Buffer.from(JSON.stringify(message)),
        { persistent: true }
      );
      
      console.log(`[x] Enviado ${JSON.stringify(message)}`);
      
      // Esperar un segundo entre mensajes
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
    
    // Cerrar la conexi贸n
    setTimeout(() => {
      connection.close();
    }, 500);
  } catch (error) {
    console.error('Error en el productor:', error);
  }
}

// Consumidor (servicio que procesa mensajes)
async function consumer() {
  try {
    // Conectar al servidor RabbitMQ
    const connection = await amqp.connect('amqp://localhost');
    const channel = await connection.createChannel();
    
    // Declarar la cola
    const queue = 'tasks_queue';
    await channel.assertQueue(queue, { durable: true });
    
    // Configurar prefetch para no recibir m谩s de un mensaje a la vez
    channel.prefetch(1);
    
    console.log('[*] Esperando mensajes. Para salir presiona CTRL+C');
    
    // Consumir mensajes
    channel.consume(queue, (msg) => {
      if (msg !== null) {
        const content = JSON.parse(msg.content.toString());
        console.log(`[x] Recibido ${JSON.stringify(content)}`);
        
        // Simular procesamiento
        setTimeout(() => {
          console.log(`[x] Procesado ${content.task}`);
          
          // Confirmar procesamiento
          channel.ack(msg);
        }, 2000);
      }
    }, { noAck: false });
  } catch (error) {
    console.error('Error en el consumidor:', error);
  }
}

// Ejecutar productor y consumidor
producer();
consumer();
